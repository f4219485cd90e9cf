"""Tests of the mixnode package."""
