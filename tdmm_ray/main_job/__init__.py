"""The main job: every stage in order (`tdmm run`)."""
