"""The bank-account service from the seed: an ordinary user of facta."""
