"""Planning: how many GPU-hours (and GPU workers) a dataset generation run needs (`tdmm plan-generation`)."""
