"""routekit agent package."""
