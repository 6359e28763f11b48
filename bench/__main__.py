"""`make bench`: every benchmark, each against a baseline measured in the same run."""

from bench import frames

if __name__ == "__main__":
    frames.main()
