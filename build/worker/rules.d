build/worker/rules.o: worker/rules.c worker/rules.h common/text.h
worker/rules.h:
common/text.h:
