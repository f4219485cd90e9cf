"""Tests of the mixclient package."""
