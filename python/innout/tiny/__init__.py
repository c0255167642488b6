"""innout-tiny: a small EG3D generator trained on the synthetic head world, bundled with innout."""

from innout.tiny.architecture import OUTPUT_RESOLUTION, RAW_RESOLUTION, tiny_init_kwargs

__all__ = ["OUTPUT_RESOLUTION", "RAW_RESOLUTION", "tiny_init_kwargs"]
