from rcnn.layers.proposal import ProposalLayer  # noqa: F401
