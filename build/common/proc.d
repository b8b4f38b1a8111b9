build/common/proc.o: common/proc.c common/proc.h common/config.h \
 common/log.h
common/proc.h:
common/config.h:
common/log.h:
