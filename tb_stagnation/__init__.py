"""tb-stagnation: a TensorBoard plugin that measures which layers are actually learning.

Nothing is imported here on purpose: TensorBoard loads the plugin through the
``tensorboard_plugins`` entry point, and the writer helpers must not pull in a
framework the user did not ask for.
"""

__version__ = "0.1.0"
