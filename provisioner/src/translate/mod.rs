//! SMI → Gateway API (GAMMA) + mesh authorization translation. Pure: no API calls.
