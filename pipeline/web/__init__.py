"""The web app: the API and (later) the analysts' console."""
