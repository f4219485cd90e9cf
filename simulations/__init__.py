"""Anonymity simulator for researchers."""
