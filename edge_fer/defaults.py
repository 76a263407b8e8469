"""Default settings of the live pipeline, in one place (options dataclasses and CLI use them).

Chosen from measurements on a 2-core x86 box (benchmarks/RESULTS.md): Haar at 256 px wide with
scale step 1.2 finds the face in 99.6% of woman2.mp4's frames at ~9 ms CPU (23 ms at 320 px
and step 1.1); detecting every 2nd frame with tracked boxes carried between halves the mean;
one classifier thread: a second one costs ~4x the CPU per crop for this small model.
"""

DETECTOR = "haar"
DETECT_WIDTH = 256
MIN_FACE_PX = 48
DETECT_EVERY = 2
CLASSIFIER_THREADS = 1
OPENCV_THREADS = 1
SMOOTH = 0.5
