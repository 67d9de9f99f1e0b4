//! A daemon pair across the lab survives a network change.
