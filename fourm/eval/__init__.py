"""Evaluation of generated modalities against the procedural world's ground truth, no network needed.

Modules (one concept each): ``segmentation`` (mIoU, pixel accuracy), ``depth`` (MAE, RMSE, abs-rel,
delta < 1.25), ``captions`` (parse world captions; attribute accuracy of a caption vs ground truth),
``blobs`` (colour segmentation of an rgb image into connected blobs), ``shape_classifier`` (blob ->
shape / size, calibrated on world renders), ``boxes`` (box IoU, best one-to-one matching),
``rgb_checker`` (is an rgb image consistent with a caption and boxes?) and ``aggregate`` (NaN-aware
means of per-sample scores). Built on them: ``world`` (a bundle's world consistency evaluation, with
``world_scores`` and ``world_report``), ``retrieval_world`` (the retrieval benchmark) and ``diversity``.
"""
