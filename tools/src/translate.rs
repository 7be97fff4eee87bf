//! Translation between wire protocols (OUCH 5.0, ITCH 5.0) and engine commands and events.
