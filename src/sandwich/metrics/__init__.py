"""Quality metrics: d-bit PSNR, MS-SSIM, LPIPS, BD-rate."""
