"""trimix mixnode package."""
