"""Accounts and transfers as decisions: one transfer is one atomic decision over two tags."""
