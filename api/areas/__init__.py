"""One module per business area: schemas (Create/Update/Read triplets), services, controllers."""
