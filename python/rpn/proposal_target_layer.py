from rcnn.layers.proposal_target import ProposalTargetLayer  # noqa: F401
