"""Synthetic sounds for the demo archive, tests and benchmarks: speech through the one espeak-ng wrapper
(:mod:`curate.synth.espeak`), music, sung lines, noise and applause (:mod:`curate.synth.sounds`)."""
