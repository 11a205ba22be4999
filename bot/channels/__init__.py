"""Channel adapters: they translate native updates to IncomingMessage and render Replies."""
