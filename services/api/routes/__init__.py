"""The API's routes, one module per concern; each route parses, calls one function, answers."""
