"""Animation exports: ARKit blendshape CSV (Live Link Face layout), parameter .npz, MP4 preview."""
