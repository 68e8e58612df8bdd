"""The pickle analyzer: a symbolic pickle machine over opcodes."""
