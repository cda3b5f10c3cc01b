"""asrlib: deep recurrent networks for speech recognition, small enough to read.

The companion library of the book *Deep Recurrent Networks for Speech Recognition*, which
reproduces Graves, Mohamed & Hinton (2013), "Speech recognition with deep recurrent neural
networks". Each module owns one idea of the paper; the chapters import them, and the tests
check each one against an independent reference (a torch built-in, a brute-force
enumeration, a float64 gradcheck).

Shape legend, used in every docstring of the package:

====  ==========================================================================
B     batch size
T     input frames (10 ms each)
U     target length (phones in the transcription)
K     phone classes (61 for TIMIT)
V     outputs with the blank, V = K + 1
H     hidden size (cells per layer, per direction)
F     input features per frame (123 in the paper: 40 mel bands + energy, with
      first and second derivatives)
====  ==========================================================================

Lengths are integer tensors (``x_lens``, ``y_lens`` of shape ``(B,)``), never fractions.
Batches are padded at the end of the time axis; padding never changes a real frame's output.

The map, one idea per module:

=========================================  =================================================
``runtime``                                device, seeding, every ``ASRLIB_*`` setting
``features``, ``phones``, ``data``         the 123 inputs, the phone sets, padded batches
``corpus`` (``store``, ``synthetic``,      the corpora behind one switch, ``load_corpus``
``synth``, ``sentences``, ``timit``)
``cells``                                  eq. 1-7: tanh RNN, LSTM with peepholes, GRU
``layers``                                 eq. 8-12: unrolled, bidirectional, deep networks
``fused_lstm``, ``native``                 the fast peephole LSTM and its compiled steps
``models``                                 the networks of Table 1 by name
``ctc``, ``ctc_decode``                    section 3.1 and its decoders
``transducer``, ``transducer_loss``,       section 3.2: prediction and joint networks, the
``transducer_decode``, ``pretrain``        lattice loss, decoding, pretraining
``objectives``, ``train``, ``checkpoint``  what is optimised, the one loop, its checkpoints
``evaluate``, ``metrics``, ``framewise``   scoring: decoding and phone error rates
``tasks``, ``gradients``, ``sensitivity``  the small experiments of chapters 2-4 and Figure 3
``plots``, ``explore``, ``run``            figures, interactive explorers, the command line
``experiments``                            Table 1 and weight noise re-run, resumable sweeps
``realspeech``, ``augment``, ``perturb``,  human recordings and scoring on them; data
``robustness``, ``robustness_rows``        augmentation; chapter 11's ablation
=========================================  =================================================
"""

from asrlib.runtime import DEVICE_ENV, get_device, seed_everything

__version__ = "0.1.0"

__all__ = ["DEVICE_ENV", "get_device", "seed_everything", "__version__"]
