"""The Pulumi program's wiring (`infra.program`), its platform back ends and the offline CLI."""
