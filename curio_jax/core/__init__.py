"""The pure, jittable core: networks, returns, RND, rollout, losses, optimiser, make_train."""
