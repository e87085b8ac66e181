"""Watchlist: the rules for followed artists and their new releases."""
