"""Deployment: SavedModel and TFLite export, the HTTP server, the model card, plots and packages."""
