"""OFA (Once-For-All) selection: encode, cluster, core set, under-trained selector, per-cluster selection."""
