"""XVision: command-line front and the error types shared by every package."""
