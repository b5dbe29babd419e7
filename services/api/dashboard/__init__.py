"""The web dashboard (GET /dashboard): its page and scripts in static/, and the operator
overview it shows to an admin key (docs/contracts.md, Dashboard)."""
