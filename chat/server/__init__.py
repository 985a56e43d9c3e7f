"""The Tornado adapter: the application, its handlers, options, metrics, and serving one or many processes."""
