"""The ground floor: errors, registries (and plugins), atomic files, console messages,
progress bars and the DDP rank. Nothing here knows about images or models."""
