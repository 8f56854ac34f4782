"""Program building: vmap over seeds, the seed loop, sharding over devices, compilation."""
