"""tickwatch's local tools: the template reader (tests and the local stack build resources from
template.yaml with it); the `tickwatch` command line comes next."""
