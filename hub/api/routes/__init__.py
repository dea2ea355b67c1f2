"""The API's routers, one per audience: partner systems, officers, auditors, residents, admins, the dev IdP."""
