"""rejections."""
