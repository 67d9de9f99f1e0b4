//! Packet loss: this kernel has no netem, so an nftables rule drops 1% of the packets at random.
