"""The ground layer: the contracts every other part of fourm shares, importing nothing of fourm but
its errors: the raw-sample schema (:mod:`fourm.core.schema`), pixel patches
(:mod:`fourm.core.patches`) and the packed multimodal batch (:mod:`fourm.core.batch`)."""
