"""`make bench`: every benchmark, each against a baseline measured in the same run."""

from bench import (
    frames,
    fuzz,
    physiology,
    population,
    replay,
    sensor_chain,
    session,
    transmitter,
)

if __name__ == "__main__":
    frames.main()
    print()
    sensor_chain.main()
    print()
    transmitter.main()
    print()
    session.main()
    print()
    physiology.main()
    print()
    fuzz.main()
    print()
    replay.main()
    print()
    population.main()
