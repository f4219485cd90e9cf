"""trimix mixclient package."""
