"""The Litestar app, authentication, the CLI and background workers."""
