"""Rendering face-model parameters to frames and video: a batched pure-torch rasterizer
(raster), mesh caps for eye/mouth openings (openings), looks and shading (appearance), the
FaceRenderer that ties them together (renderer), H.264 video I/O (video), a dlib sanity check
(dlib_check) and the `tdmm render` command (commands)."""
