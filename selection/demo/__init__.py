"""The models `thresher demo` builds offline: a tiny VLM from SmolLM2 (model) and a small CLIP
trained on the demo scenes (clip). They sit above engines, judges and ofa, which they drive."""
