"""routekit mcp_bridge package."""
