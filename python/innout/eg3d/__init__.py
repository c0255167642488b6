"""Clean-room reimplementation of the EG3D generator (StyleGAN2 backbone, SR, decoder)."""
