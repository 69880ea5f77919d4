"""routekit storage package."""
