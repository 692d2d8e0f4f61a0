"""Joint image/label transforms built from torchvision.transforms.v2.

Images travel as `tv_tensors.Image` (uint8), labels as `tv_tensors.Mask`, so every
geometric step moves both alike and labels are only ever resized with nearest
neighbours (v2 coerces any interpolation of a Mask to nearest) and never normalized.
Random draws come from torch's global generator: seeding torch (the trainer does,
per epoch; DataLoader workers derive their seeds from it) makes them reproducible.
"""
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ResizeIfSmaller(v2.Transform):
    """Resizes to size x size when either side is below `size`, as the reference's random
    crop did instead of padding (so no label is ever padded): bilinear for images."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def transform(self, inpt, params):
        height, width = F.get_size(inpt)
        if height >= self.size and width >= self.size:
            return inpt
        return self._call_kernel(F.resize, inpt, [self.size, self.size],
                                 interpolation=v2.InterpolationMode.BILINEAR, antialias=True)


def _to_normalized_float(mean, std):
    # A plain dtype converts images only: masks keep their integer train ids.
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]


def training_transform(crop_size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> v2.Compose:
    """Random horizontal flip, then a random square crop (after ResizeIfSmaller), then normalize."""
    # After ResizeIfSmaller the crop never pads; were it to, labels would be padded with void.
    crop = v2.RandomCrop(crop_size, fill={tv_tensors.Mask: 255, "others": 0})
    return v2.Compose([v2.RandomHorizontalFlip(), ResizeIfSmaller(crop_size), crop, *_to_normalized_float(mean, std)])


def evaluation_transform(mean=IMAGENET_MEAN, std=IMAGENET_STD) -> v2.Compose:
    """Full resolution: to float and normalize."""
    return v2.Compose(_to_normalized_float(mean, std))


def apply_transform(transform, image, label):
    """uint8 image (H,W,3) and uint8 train ids (H,W), numpy -> float (3,H',W') and int64 (H',W') tensors."""
    image = tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1))
    mask = tv_tensors.Mask(torch.from_numpy(label))
    image, mask = transform(image, mask)
    return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()
