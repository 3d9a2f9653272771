"""The user directory from the CQRS guide (seed 003): a second example on facta."""
