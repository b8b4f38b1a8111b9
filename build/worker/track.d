build/worker/track.o: worker/track.c worker/track.h
worker/track.h:
