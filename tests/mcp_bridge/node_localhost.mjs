// Preload for Node servers in tests: bind listeners that name no host to 127.0.0.1 instead of every interface.
// Patches Server#_listen2, which binds synchronously, so callers reading server.address() right after listen()
// keep working (passing a host to listen() would make Node bind asynchronously).
import net from "node:net";

const original = net.Server.prototype._listen2;
net.Server.prototype._listen2 = function (address, port, addressType, backlog, fd, flags) {
  if ((fd === undefined || fd === null || fd === -1) && (!address || address === "::" || address === "0.0.0.0")) {
    address = "127.0.0.1";
    addressType = 4;
  }
  return original.call(this, address, port, addressType, backlog, fd, flags);
};
