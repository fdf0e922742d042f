"""What a model family can do: the names callers ask ``model.supports(...)`` with, never the
school. Each family declares its set; :mod:`imgcls.models.base` documents the hooks."""

from __future__ import annotations

# What a family can do; callers ask these, never the school.
GRADIENTS = "gradients"            # a differentiable network: Grad-CAM, Integrated Gradients, sanity check
ONNX = "onnx"                      # exports to ONNX with its preprocessing inside
VALIDATION = "validation"          # fit(val=...) uses a validation split (early stopping, best epoch)
EPOCHS = "epochs"                  # trains in epochs that callbacks see (search pruning, budgets)
RESUME = "resume"                  # checkpoints every epoch; an interrupted fit resumes
FEATURE_GROUPS = "feature_groups"  # named groups of feature columns: permutation importance per group
TEST_TIME_VIEWS = "tta"            # averages flipped views at prediction (train.tta)
EMBEDDINGS = "embeddings"          # predicts from frozen-backbone embeddings: embedding_id(), embed(),
                                   # proba_from_embeddings(); models with one id can share them
REPRESENTATION = "representation"  # representation(): the vectors it decides from (unknown detection)
TILES = "tiles"                    # learns from bags of tiles of large images (data.tiles): its input is
                                   # (N, T, H, W, 3); tile_scores() gives the tile heat map
SEQUENCE = "sequence"              # learns from clips of video frames in order (data.frames): its input is
                                   # (N, T, H, W, 3); frame_scores() says which frames mattered
FRAME_GRADIENTS = "frame_gradients"  # a clip model differentiable from one frame's pixels to the clip's
                                     # answer: frame_network(clip, t) (Grad-CAM on a key frame)
CAPABILITIES = (GRADIENTS, ONNX, VALIDATION, EPOCHS, RESUME, FEATURE_GROUPS, TEST_TIME_VIEWS, EMBEDDINGS,
                REPRESENTATION, TILES, SEQUENCE, FRAME_GRADIENTS)

__all__ = ["CAPABILITIES", "EMBEDDINGS", "EPOCHS", "FEATURE_GROUPS", "FRAME_GRADIENTS", "GRADIENTS", "ONNX",
           "REPRESENTATION", "RESUME", "SEQUENCE", "TEST_TIME_VIEWS", "TILES", "VALIDATION"]
